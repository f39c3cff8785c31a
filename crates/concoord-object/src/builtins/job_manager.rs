//! `JobManager`: the original ConCoord job list (`concoord/object/jobmanager.py`),
//! written with `#[object]`. Jobs are arbitrary `Value`s, typically dicts, kept in
//! scheduling order; a job is found by equality (`Value` equality, the first equal
//! job wins). The original's `update` always raised `AttributeError` (a typo); here it
//! sets a key of the job when the job is a dict. It is not a scheduler: it runs
//! nothing, assigns nothing to workers and has no notion of job state beyond the
//! dict's own keys. Note that after `update` the stored job differs from the value
//! passed in, so later calls must name it by its updated value.

use super::log::join_str;
use crate::{ObjectError, Types, Value};
use serde::{Deserialize, Serialize};

/// A replicated list of jobs: `JobManager()` in the original.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JobManager {
    /// In scheduling order.
    jobs: Vec<Value>,
}

#[concoord_object::object]
impl JobManager {
    /// Appends `job`; returns None.
    pub fn schedule(&mut self, job: Value) {
        self.jobs.push(job);
    }

    /// Removes the first job equal to `job`; returns None, or
    /// `ValueError("job not scheduled")`.
    pub fn deschedule(&mut self, job: Value) -> Result<(), ObjectError> {
        let index = self.find(&job)?;
        self.jobs.remove(index);
        Ok(())
    }

    /// Sets `key` to `value` (inserting or replacing) in the first job equal to `job`;
    /// returns None. `ValueError("job not scheduled")` when there is none, `TypeError`
    /// when that job is not a dict.
    pub fn update(&mut self, job: Value, key: Value, value: Value) -> Result<(), ObjectError> {
        let index = self.find(&job)?;
        let Value::Map(entries) = &mut self.jobs[index] else {
            return Err(ObjectError::type_error(format!(
                "'{}' object does not support item assignment",
                job.type_name()
            )));
        };
        match entries.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = value,
            None => entries.push((key, value)),
        }
        Ok(())
    }

    /// The jobs, in scheduling order.
    pub fn list_jobs(&self) -> Vec<Value> {
        self.jobs.clone()
    }

    /// Python's `str(manager)`: the jobs' `str()`, space-joined.
    #[concoord(name = "__str__")]
    pub fn describe(&self) -> String {
        join_str(&self.jobs)
    }

    fn find(&self, job: &Value) -> Result<usize, ObjectError> {
        self.jobs
            .iter()
            .position(|j| j == job)
            .ok_or_else(|| ObjectError::value_error("job not scheduled"))
    }
}

/// Registers `JobManager` and the original's `concoord.object.jobmanager.JobManager`.
pub fn register(types: &mut Types) {
    types.register::<JobManager>(&["concoord.object.jobmanager.JobManager"]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CallId, Ctx, Object, ObjectType, Outcome};
    use concoord_wire::{RequestNumber, SessionId, Slot, Time};

    fn call(jm: &mut JobManager, method: &str, args: &[Value]) -> Outcome {
        let mut wakes = Vec::new();
        let id = CallId { session: SessionId(1), request: RequestNumber(1) };
        let mut ctx = Ctx::new(id, Time(0), Slot(1), &mut wakes);
        let outcome = jm.call(&mut ctx, method, args);
        assert!(wakes.is_empty(), "a job manager never wakes anyone");
        outcome
    }

    fn text(s: &str) -> Value {
        Value::Str(s.into())
    }

    fn job(pairs: &[(&str, Value)]) -> Value {
        Value::Map(pairs.iter().map(|(k, v)| (text(k), v.clone())).collect())
    }

    #[test]
    fn schedules_lists_and_deschedules_the_first_equal_job() {
        let mut jm = JobManager::construct(&[]).unwrap();
        let a = job(&[("id", Value::Int(1))]);
        assert_eq!(
            call(&mut jm, "schedule", std::slice::from_ref(&a)),
            Outcome::Return(Value::Nil)
        );
        call(&mut jm, "schedule", &[text("backup")]);
        call(&mut jm, "schedule", std::slice::from_ref(&a));
        let list = Value::List(vec![a.clone(), text("backup"), a.clone()]);
        assert_eq!(jm.query("list_jobs", &[]), Some(Ok(list)));
        let described = text("{'id': 1} backup {'id': 1}");
        assert_eq!(jm.query("__str__", &[]), Some(Ok(described)));
        assert_eq!(
            call(&mut jm, "deschedule", std::slice::from_ref(&a)),
            Outcome::Return(Value::Nil)
        );
        assert_eq!(jm.list_jobs(), [text("backup"), a]);
        let absent = Outcome::Raise(ObjectError::value_error("job not scheduled"));
        assert_eq!(call(&mut jm, "deschedule", &[text("nope")]), absent);
        assert_eq!(jm.query("schedule", &[]), None, "schedule is a command");
    }

    #[test]
    fn update_sets_a_key_of_a_dict_job() {
        let mut jm = JobManager::default();
        let a = job(&[("id", Value::Int(1)), ("state", text("new"))]);
        call(&mut jm, "schedule", &[text("plain")]);
        call(&mut jm, "schedule", std::slice::from_ref(&a));
        let args = [a.clone(), text("state"), text("running")];
        assert_eq!(call(&mut jm, "update", &args), Outcome::Return(Value::Nil));
        let running = job(&[("id", Value::Int(1)), ("state", text("running"))]);
        assert_eq!(jm.list_jobs(), [text("plain"), running.clone()]);
        let args = [running, text("worker"), Value::Int(3)];
        assert_eq!(call(&mut jm, "update", &args), Outcome::Return(Value::Nil));
        assert_eq!(jm.describe(), "plain {'id': 1, 'state': 'running', 'worker': 3}");

        let absent = Outcome::Raise(ObjectError::value_error("job not scheduled"));
        assert_eq!(call(&mut jm, "update", &[a, text("state"), Value::Nil]), absent);
        let not_a_dict = ObjectError::type_error("'str' object does not support item assignment");
        let args = [text("plain"), text("k"), Value::Nil];
        assert_eq!(call(&mut jm, "update", &args), Outcome::Raise(not_a_dict));
        let Outcome::Raise(e) = call(&mut jm, "update", &[text("plain"), text("k")]) else {
            panic!()
        };
        assert_eq!(e, ObjectError::type_error("update() missing required argument 'value'"));
    }

    #[test]
    fn snapshot_restore_and_session_close() {
        let mut jm = JobManager::default();
        call(&mut jm, "schedule", &[job(&[("id", Value::Float(2.5))])]);
        call(&mut jm, "schedule", &[Value::List(vec![Value::Nil])]);
        let restored = JobManager::restore(&jm.snapshot().unwrap()).unwrap();
        assert_eq!(restored, jm);
        let mut wakes = Vec::new();
        let id = CallId { session: SessionId(2), request: RequestNumber(1) };
        let mut ctx = Ctx::new(id, Time(0), Slot(2), &mut wakes);
        jm.session_closed(&mut ctx, SessionId(1));
        assert_eq!(jm, restored, "jobs do not belong to sessions");
    }

    #[test]
    fn is_registered_under_both_names() {
        let mut types = Types::new();
        register(&mut types);
        for name in ["JobManager", "concoord.object.jobmanager.JobManager"] {
            assert_eq!(types.construct(name, &[]).unwrap().type_name(), "JobManager");
        }
    }
}
