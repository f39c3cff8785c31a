// A trait impl is not an object's method set: the macro needs an inherent impl.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Counter {
    value: i64,
}

#[concoord_object::object]
impl Default for Counter {
    fn default() -> Self {
        Counter { value: 0 }
    }
}

fn main() {}
