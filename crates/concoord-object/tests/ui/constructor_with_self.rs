// A constructor builds the object, so it has no receiver.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Counter {
    value: i64,
}

#[concoord_object::object]
impl Counter {
    #[concoord(constructor)]
    pub fn start(&self, value: i64) -> Self {
        Counter { value: self.value + value }
    }
}

fn main() {}
