// One method handles the end of a session.
use concoord_object::Ctx;
use concoord_wire::SessionId;

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Lock {
    holder: Option<SessionId>,
}

#[concoord_object::object]
impl Lock {
    #[concoord(session_closed)]
    fn release_holder(&mut self, _ctx: &mut Ctx, session: SessionId) {
        if self.holder == Some(session) {
            self.holder = None;
        }
    }

    #[concoord(session_closed)]
    fn forget_waiters(&mut self, _ctx: &mut Ctx, _session: SessionId) {}
}

fn main() {}
