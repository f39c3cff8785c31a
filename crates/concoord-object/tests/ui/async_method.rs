// A method runs to completion inside one log entry: waiting is `Blocking::Park`.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Counter {
    value: i64,
}

#[concoord_object::object]
impl Counter {
    pub async fn increment(&mut self) {
        self.value += 1;
    }
}

fn main() {}
