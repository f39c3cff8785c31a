// An object has one constructor, as a Python class has one `__init__`.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Counter {
    value: i64,
}

#[concoord_object::object]
impl Counter {
    #[concoord(constructor)]
    pub fn new() -> Self {
        Counter { value: 0 }
    }

    #[concoord(constructor)]
    pub fn starting_at(value: i64) -> Self {
        Counter { value }
    }
}

fn main() {}
