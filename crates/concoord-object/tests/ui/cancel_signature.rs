// The cancel hook has one signature: (&mut self, &mut Ctx, CallId) -> bool.
use concoord_object::{CallId, Ctx};

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Lock {
    waiters: Vec<CallId>,
}

#[concoord_object::object]
impl Lock {
    #[concoord(cancel)]
    fn on_cancel(&mut self, _ctx: &mut Ctx, call: CallId) {
        self.waiters.retain(|c| *c != call);
    }
}

fn main() {}
