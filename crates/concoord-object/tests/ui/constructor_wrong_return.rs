// A constructor returns `Self` or `Result<Self, ObjectError>`.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Counter {
    value: i64,
}

#[concoord_object::object]
impl Counter {
    #[concoord(constructor)]
    pub fn new(value: i64) -> Option<Counter> {
        Some(Counter { value })
    }
}

fn main() {}
