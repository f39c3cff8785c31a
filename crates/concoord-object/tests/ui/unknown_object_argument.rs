// `#[object(...)]` takes only `name = "..."`.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Counter {
    value: i64,
}

#[concoord_object::object(alias = "concoord.object.counter.Counter")]
impl Counter {
    pub fn getvalue(&self) -> i64 {
        self.value
    }
}

fn main() {}
