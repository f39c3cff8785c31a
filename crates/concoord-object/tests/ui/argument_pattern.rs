// An argument's name is its name on the wire, so it cannot be a pattern.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Point {
    x: i64,
    y: i64,
}

#[concoord_object::object]
impl Point {
    pub fn set(&mut self, (x, y): (i64, i64)) {
        self.x = x;
        self.y = y;
    }
}

fn main() {}
