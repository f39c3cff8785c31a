// The attribute goes on the impl block, not on the struct.
#[concoord_object::object]
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Counter {
    value: i64,
}

fn main() {}
