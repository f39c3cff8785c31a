// The typed proxy has `new` and `into_inner`, and one method per proxy name: the wire
// name when it is a snake_case identifier (other than those two), the Rust name otherwise.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Counter {
    value: i64,
}

#[concoord_object::object]
impl Counter {
    // Wire name `new` works (`#[concoord(name = "new")] pub fn reset`), Rust name `new` not.
    pub fn new(&mut self) {
        self.value = 0;
    }

    #[concoord(name = "__clear__")]
    pub fn clear(&mut self) {
        self.value = 0;
    }

    #[concoord(name = "clear")]
    pub fn wipe(&mut self) {
        self.value = 0;
    }
}

fn main() {}
