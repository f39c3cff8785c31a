// One method takes back cancelled calls.
use concoord_object::{CallId, Ctx};

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Lock {
    waiters: Vec<CallId>,
}

#[concoord_object::object]
impl Lock {
    #[concoord(cancel)]
    fn forget(&mut self, _ctx: &mut Ctx, call: CallId) -> bool {
        self.waiters.retain(|c| *c != call);
        true
    }

    #[concoord(cancel)]
    fn forget_too(&mut self, _ctx: &mut Ctx, _call: CallId) -> bool {
        false
    }
}

fn main() {}
