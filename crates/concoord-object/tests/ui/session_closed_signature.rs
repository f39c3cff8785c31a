// The session-end hook has one signature: (&mut self, &mut Ctx, SessionId).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Lock {
    held: bool,
}

#[concoord_object::object]
impl Lock {
    #[concoord(session_closed)]
    fn on_session_closed(&mut self) {
        self.held = false;
    }
}

fn main() {}
