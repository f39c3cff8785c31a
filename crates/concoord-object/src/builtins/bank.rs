//! `Bank`: the original ConCoord bank (`concoord/object/bank.py`, the paper's Fig. 2),
//! written with `#[object]`. Accounts are numbered by an int and hold a float
//! balance. The original's inverted overdraft guard is fixed: `debit` refuses a debit
//! larger than the balance (returning False) instead of refusing every *covered* one.
//! Amounts must be finite and non-negative (a negative deposit or debit is a
//! `ValueError`, where the original silently moved money the other way). It is a
//! demonstration object, not accounting software: balances are `f64`, as in the
//! original, with float rounding; there are no transfers and no history.

use crate::{ObjectError, Types, Value};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A replicated set of accounts: `Bank()` in the original.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Bank {
    /// Account number → balance.
    accounts: BTreeMap<i64, f64>,
}

#[concoord_object::object]
impl Bank {
    /// Opens account `acct` with balance 0.0: True, or False if it already exists.
    pub fn open(&mut self, acct: i64) -> bool {
        if self.accounts.contains_key(&acct) {
            return false;
        }
        self.accounts.insert(acct, 0.0);
        true
    }

    /// Closes account `acct` (whatever its balance): True, or `KeyError(acct)`.
    pub fn close(&mut self, acct: i64) -> Result<bool, ObjectError> {
        self.accounts.remove(&acct).ok_or_else(|| no_account(acct))?;
        Ok(true)
    }

    /// Adds `amt` to the balance and returns the new balance. `KeyError` for an
    /// unknown account (checked first), `ValueError` for a negative or non-finite
    /// amount, `OverflowError` if the balance would leave the float range.
    pub fn deposit(&mut self, acct: i64, amt: f64) -> Result<f64, ObjectError> {
        let balance = *self.accounts.get(&acct).ok_or_else(|| no_account(acct))?;
        check_amount(amt)?;
        let new = balance + amt;
        if !new.is_finite() {
            return Err(ObjectError::new("OverflowError", "the balance left the float range"));
        }
        self.accounts.insert(acct, new);
        Ok(new)
    }

    /// Takes `amt` from the balance unless that would overdraw the account: returns
    /// the new balance (a float), or False and changes nothing when `amt` exceeds the
    /// balance. `KeyError` for an unknown account (checked first), `ValueError` for a
    /// negative or non-finite amount.
    pub fn debit(&mut self, acct: i64, amt: f64) -> Result<Value, ObjectError> {
        let balance = *self.accounts.get(&acct).ok_or_else(|| no_account(acct))?;
        check_amount(amt)?;
        if amt > balance {
            return Ok(Value::Bool(false));
        }
        let new = balance - amt;
        self.accounts.insert(acct, new);
        Ok(Value::Float(new))
    }

    /// The balance of `acct`, or `KeyError(acct)`.
    pub fn balance(&self, acct: i64) -> Result<f64, ObjectError> {
        self.accounts.get(&acct).copied().ok_or_else(|| no_account(acct))
    }

    /// Python's `str(bank)`: one `Account N: balance = $X.XX` line per account, in
    /// account order.
    #[concoord(name = "__str__")]
    pub fn describe(&self) -> String {
        let lines: Vec<String> = self
            .accounts
            .iter()
            .map(|(acct, balance)| format!("Account {acct}: balance = ${balance:.2}"))
            .collect();
        lines.join("\n")
    }
}

fn no_account(acct: i64) -> ObjectError {
    ObjectError::key_error(acct.to_string())
}

fn check_amount(amt: f64) -> Result<(), ObjectError> {
    if amt.is_finite() && amt >= 0.0 {
        Ok(())
    } else {
        Err(ObjectError::value_error(format!("amount must be a finite number >= 0, got {amt:?}")))
    }
}

/// Registers `Bank` and the original's `concoord.object.bank.Bank`.
pub fn register(types: &mut Types) {
    types.register::<Bank>(&["concoord.object.bank.Bank"]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CallId, Ctx, Object, ObjectType, Outcome};
    use concoord_wire::{RequestNumber, SessionId, Slot, Time};

    fn call(bank: &mut Bank, method: &str, args: &[Value]) -> Outcome {
        let mut wakes = Vec::new();
        let id = CallId { session: SessionId(1), request: RequestNumber(1) };
        let mut ctx = Ctx::new(id, Time(0), Slot(1), &mut wakes);
        let outcome = bank.call(&mut ctx, method, args);
        assert!(wakes.is_empty(), "a bank never wakes anyone");
        outcome
    }

    fn ret(v: Value) -> Outcome {
        Outcome::Return(v)
    }

    fn int(i: i64) -> Value {
        Value::Int(i)
    }

    #[test]
    fn opens_deposits_debits_and_closes() {
        let mut bank = Bank::construct(&[]).unwrap();
        assert_eq!(call(&mut bank, "open", &[int(7)]), ret(Value::Bool(true)));
        assert_eq!(call(&mut bank, "open", &[int(7)]), ret(Value::Bool(false)));
        assert_eq!(call(&mut bank, "deposit", &[int(7), int(100)]), ret(Value::Float(100.0)));
        assert_eq!(call(&mut bank, "debit", &[int(7), int(50)]), ret(Value::Float(50.0)));
        assert_eq!(call(&mut bank, "debit", &[int(7), Value::Float(50.0)]), ret(Value::Float(0.0)));
        assert_eq!(bank.query("balance", &[int(7)]), Some(Ok(Value::Float(0.0))));
        assert_eq!(call(&mut bank, "close", &[int(7)]), ret(Value::Bool(true)));
        assert_eq!(bank.query("balance", &[int(7)]), Some(Err(ObjectError::key_error("7"))));
        assert_eq!(bank.query("debit", &[int(7), int(1)]), None, "debit is a command");
    }

    #[test]
    fn an_overdraft_is_refused_with_false_and_changes_nothing() {
        // The original returned False here for 50 and debited 150 down to -50.0.
        let mut bank = Bank::default();
        bank.open(1);
        call(&mut bank, "deposit", &[int(1), int(100)]);
        assert_eq!(call(&mut bank, "debit", &[int(1), int(150)]), ret(Value::Bool(false)));
        assert_eq!(bank.balance(1), Ok(100.0));
        assert_eq!(
            call(&mut bank, "debit", &[int(1), Value::Float(100.5)]),
            ret(Value::Bool(false))
        );
        assert_eq!(call(&mut bank, "debit", &[int(1), int(50)]), ret(Value::Float(50.0)));
    }

    #[test]
    fn unknown_accounts_and_bad_amounts_raise() {
        let mut bank = Bank::default();
        let missing = Outcome::Raise(ObjectError::key_error("-3"));
        assert_eq!(call(&mut bank, "close", &[int(-3)]), missing);
        assert_eq!(call(&mut bank, "deposit", &[int(-3), int(1)]), missing);
        assert_eq!(call(&mut bank, "debit", &[int(-3), int(-1)]), missing, "account first");
        bank.open(1);
        let negative = ObjectError::value_error("amount must be a finite number >= 0, got -1.0");
        assert_eq!(
            call(&mut bank, "deposit", &[int(1), int(-1)]),
            Outcome::Raise(negative.clone())
        );
        assert_eq!(call(&mut bank, "debit", &[int(1), int(-1)]), Outcome::Raise(negative));
        let nan = Value::Float(f64::NAN);
        let Outcome::Raise(e) = call(&mut bank, "deposit", &[int(1), nan]) else { panic!() };
        assert_eq!(e, ObjectError::value_error("amount must be a finite number >= 0, got NaN"));
        call(&mut bank, "deposit", &[int(1), Value::Float(f64::MAX)]);
        let Outcome::Raise(e) = call(&mut bank, "deposit", &[int(1), Value::Float(f64::MAX)])
        else {
            panic!()
        };
        assert_eq!(e.kind, "OverflowError");
        assert_eq!(bank.balance(1), Ok(f64::MAX));
        let Outcome::Raise(e) = call(&mut bank, "open", &[Value::Str("1".into())]) else {
            panic!()
        };
        assert_eq!(e, ObjectError::type_error("open() argument 'acct': expected int, got str"));
    }

    #[test]
    fn describes_accounts_in_order() {
        let mut bank = Bank::default();
        assert_eq!(bank.query("__str__", &[]), Some(Ok(Value::Str(String::new()))));
        for acct in [20, 3] {
            bank.open(acct);
        }
        call(&mut bank, "deposit", &[int(20), Value::Float(12.345)]);
        call(&mut bank, "deposit", &[int(3), int(5)]);
        let text = "Account 3: balance = $5.00\nAccount 20: balance = $12.35";
        assert_eq!(bank.query("__str__", &[]), Some(Ok(Value::Str(text.into()))));
    }

    #[test]
    fn snapshot_restore_and_session_close() {
        let mut bank = Bank::default();
        bank.open(1);
        bank.open(-2);
        call(&mut bank, "deposit", &[int(1), Value::Float(0.1)]);
        let restored = Bank::restore(&bank.snapshot().unwrap()).unwrap();
        assert_eq!(restored, bank);
        assert_eq!(restored.balance(1), Ok(0.1));
        let mut wakes = Vec::new();
        let id = CallId { session: SessionId(2), request: RequestNumber(1) };
        let mut ctx = Ctx::new(id, Time(0), Slot(2), &mut wakes);
        bank.session_closed(&mut ctx, SessionId(1));
        assert_eq!(bank, restored, "accounts do not belong to sessions");
        assert!(Bank::restore(b"not a snapshot").is_err());
    }

    #[test]
    fn is_registered_under_both_names() {
        let mut types = Types::new();
        register(&mut types);
        for name in ["Bank", "concoord.object.bank.Bank"] {
            assert_eq!(types.construct(name, &[]).unwrap().type_name(), "Bank");
        }
    }
}
