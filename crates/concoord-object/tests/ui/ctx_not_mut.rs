// The call context is passed as `&mut Ctx`.
use concoord_object::Ctx;

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Lock {
    token: u64,
}

#[concoord_object::object]
impl Lock {
    pub fn acquire(&mut self, ctx: &Ctx) -> u64 {
        self.token = ctx.slot().0;
        self.token
    }
}

fn main() {}
