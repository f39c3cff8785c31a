// Only exposed methods (`pub fn` with a receiver) have a wire name.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Counter {
    value: i64,
}

#[concoord_object::object]
impl Counter {
    #[concoord(name = "__str__")]
    fn describe(&self) -> String {
        format!("The counter value is {}", self.value)
    }
}

fn main() {}
