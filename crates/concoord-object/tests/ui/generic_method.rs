// Every argument is decoded into one concrete type, and every result is decoded by the
// typed proxy: no generic methods, no `impl Trait`.
use concoord_object::IntoValue;

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Log {
    entries: Vec<String>,
}

#[concoord_object::object]
impl Log {
    pub fn append<T: ToString>(&mut self, entry: T) {
        self.entries.push(entry.to_string());
    }

    pub fn append_value(&mut self, entry: impl IntoValue) {
        self.entries.push(entry.into_value().to_string());
    }

    pub fn last(&self) -> impl IntoValue {
        self.entries.last().cloned()
    }
}

fn main() {}
