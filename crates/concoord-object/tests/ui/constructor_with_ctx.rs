// A constructor builds the initial state from its arguments alone.
use concoord_object::Ctx;

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Lease {
    start: u64,
}

#[concoord_object::object]
impl Lease {
    #[concoord(constructor)]
    pub fn new(ctx: &mut Ctx) -> Self {
        Lease { start: ctx.timestamp().0 }
    }
}

fn main() {}
