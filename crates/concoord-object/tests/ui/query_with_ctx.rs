// A query may run without a log entry, so it has no `Ctx`.
use concoord_object::Ctx;

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Clock {
    ticks: u64,
}

#[concoord_object::object]
impl Clock {
    pub fn now(&self, ctx: &mut Ctx) -> u64 {
        ctx.timestamp().0 + self.ticks
    }
}

fn main() {}
