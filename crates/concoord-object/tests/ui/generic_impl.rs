// The registry constructs objects by name, so an object type cannot be generic.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Register<T> {
    value: T,
}

#[concoord_object::object]
impl<T: Clone> Register<T> {
    pub fn get(&self) -> T {
        self.value.clone()
    }
}

fn main() {}
