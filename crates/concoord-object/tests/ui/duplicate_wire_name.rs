// Two methods cannot answer to the same name on the wire.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Counter {
    value: i64,
}

#[concoord_object::object]
impl Counter {
    pub fn getvalue(&self) -> i64 {
        self.value
    }

    #[concoord(name = "getvalue")]
    pub fn value(&self) -> i64 {
        self.value
    }
}

fn main() {}
