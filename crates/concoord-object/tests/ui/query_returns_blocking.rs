// Only a command can park its caller: queries do not go through the log.
use concoord_object::Blocking;

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Queue {
    items: Vec<i64>,
}

#[concoord_object::object]
impl Queue {
    pub fn peek(&self) -> Blocking<i64> {
        match self.items.first() {
            Some(item) => Blocking::Ready(*item),
            None => Blocking::Park,
        }
    }
}

fn main() {}
