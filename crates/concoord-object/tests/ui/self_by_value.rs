// The object lives on after a call: a method cannot consume it.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Counter {
    value: i64,
}

#[concoord_object::object]
impl Counter {
    pub fn into_value(self) -> i64 {
        self.value
    }
}

fn main() {}
