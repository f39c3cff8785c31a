// Only `name = "..."`, `constructor` and `session_closed` are keys of `#[concoord(...)]`.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Counter {
    value: i64,
}

#[concoord_object::object]
impl Counter {
    #[concoord(rename = "getValue")]
    pub fn getvalue(&self) -> i64 {
        self.value
    }
}

fn main() {
    // The impl block is still emitted, so this is the only error.
    let _ = Counter::default().getvalue();
}
