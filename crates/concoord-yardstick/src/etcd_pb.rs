//! The few etcd v3 protobuf messages the etcd backend sends and reads, written out with
//! prost's derive instead of generated at build time, so that building the workspace
//! needs no `protoc`. Field numbers and enum values are those of etcd's
//! `api/etcdserverpb/rpc.proto`, `api/mvccpb/kv.proto` and
//! `server/etcdserver/api/v3lock/v3lockpb/v3lock.proto` (as shipped in etcd-client
//! 0.21.1); fields the backend never sets or reads are left out, which protobuf allows
//! (an absent field is its default, and the decoder skips unknown ones).
//!
//! Not a general etcd binding: add a field only together with the code that uses it.

/// gRPC method paths.
pub const RANGE: &str = "/etcdserverpb.KV/Range";
pub const PUT: &str = "/etcdserverpb.KV/Put";
pub const TXN: &str = "/etcdserverpb.KV/Txn";
pub const LEASE_GRANT: &str = "/etcdserverpb.Lease/LeaseGrant";
pub const LEASE_REVOKE: &str = "/etcdserverpb.Lease/LeaseRevoke";
pub const LOCK: &str = "/v3lockpb.Lock/Lock";
pub const UNLOCK: &str = "/v3lockpb.Lock/Unlock";

/// mvccpb.KeyValue
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    #[prost(int64, tag = "3")]
    pub mod_revision: i64,
    #[prost(bytes = "vec", tag = "5")]
    pub value: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RangeRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    /// false (the default) is a linearizable read through the leader's read index.
    #[prost(bool, tag = "7")]
    pub serializable: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RangeResponse {
    #[prost(message, repeated, tag = "2")]
    pub kvs: Vec<KeyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PutRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PutResponse {}

// Enums list every value: prost takes the first variant as the field's default and
// leaves a default value off the wire, so it must be the proto's 0.

/// Compare.CompareResult
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum CompareResult {
    Equal = 0,
    Greater = 1,
    Less = 2,
    NotEqual = 3,
}

/// Compare.CompareTarget
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum CompareTarget {
    Version = 0,
    Create = 1,
    Mod = 2,
    Value = 3,
    Lease = 4,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Compare {
    #[prost(enumeration = "CompareResult", tag = "1")]
    pub result: i32,
    #[prost(enumeration = "CompareTarget", tag = "2")]
    pub target: i32,
    #[prost(bytes = "vec", tag = "3")]
    pub key: Vec<u8>,
    #[prost(oneof = "TargetUnion", tags = "6")]
    pub target_union: Option<TargetUnion>,
}

/// Compare.target_union
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum TargetUnion {
    #[prost(int64, tag = "6")]
    ModRevision(i64),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RequestOp {
    #[prost(oneof = "Request", tags = "1, 2")]
    pub request: Option<Request>,
}

/// RequestOp.request
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Request {
    #[prost(message, tag = "1")]
    Range(RangeRequest),
    #[prost(message, tag = "2")]
    Put(PutRequest),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ResponseOp {
    #[prost(oneof = "Response", tags = "1, 2")]
    pub response: Option<Response>,
}

/// ResponseOp.response
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Response {
    #[prost(message, tag = "1")]
    Range(RangeResponse),
    #[prost(message, tag = "2")]
    Put(PutResponse),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TxnRequest {
    #[prost(message, repeated, tag = "1")]
    pub compare: Vec<Compare>,
    #[prost(message, repeated, tag = "2")]
    pub success: Vec<RequestOp>,
    #[prost(message, repeated, tag = "3")]
    pub failure: Vec<RequestOp>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TxnResponse {
    #[prost(bool, tag = "2")]
    pub succeeded: bool,
    #[prost(message, repeated, tag = "3")]
    pub responses: Vec<ResponseOp>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LeaseGrantRequest {
    #[prost(int64, tag = "1")]
    pub ttl: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LeaseGrantResponse {
    #[prost(int64, tag = "2")]
    pub id: i64,
    #[prost(string, tag = "4")]
    pub error: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LeaseRevokeRequest {
    #[prost(int64, tag = "1")]
    pub id: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LeaseRevokeResponse {}

/// v3lockpb.LockRequest
#[derive(Clone, PartialEq, prost::Message)]
pub struct LockRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub name: Vec<u8>,
    #[prost(int64, tag = "2")]
    pub lease: i64,
}

/// v3lockpb.LockResponse: `key` is the lock's ownership key, which Unlock deletes.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LockResponse {
    #[prost(bytes = "vec", tag = "2")]
    pub key: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct UnlockRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct UnlockResponse {}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    // Bytes worked out by hand from the protobuf encoding rules and rpc.proto's field
    // numbers, so a wrong tag fails here rather than against a live etcd.
    #[test]
    fn messages_encode_with_etcds_field_numbers() {
        let range = RangeRequest { key: b"k".to_vec(), serializable: true };
        assert_eq!(range.encode_to_vec(), [0x0a, 1, b'k', 0x38, 1]);

        let txn = TxnRequest {
            compare: vec![Compare {
                result: CompareResult::Equal as i32,
                target: CompareTarget::Mod as i32,
                key: b"k".to_vec(),
                target_union: Some(TargetUnion::ModRevision(5)),
            }],
            success: vec![RequestOp {
                request: Some(Request::Put(PutRequest {
                    key: b"k".to_vec(),
                    value: b"1".to_vec(),
                })),
            }],
            failure: vec![RequestOp {
                request: Some(Request::Range(RangeRequest {
                    key: b"k".to_vec(),
                    serializable: false,
                })),
            }],
        };
        // compare { target: MOD, key, mod_revision: 5 } (result EQUAL is the default)
        let compare = [0x0a, 7, 0x10, 2, 0x1a, 1, b'k', 0x30, 5];
        // success { request_put { key, value } }
        let success = [0x12, 8, 0x12, 6, 0x0a, 1, b'k', 0x12, 1, b'1'];
        // failure { request_range { key } }
        let failure = [0x1a, 5, 0x0a, 3, 0x0a, 1, b'k'];
        assert_eq!(txn.encode_to_vec(), [&compare[..], &success, &failure].concat());

        let lock = LockRequest { name: b"n".to_vec(), lease: 300 };
        assert_eq!(lock.encode_to_vec(), [0x0a, 1, b'n', 0x10, 0xac, 0x02]);
    }

    #[test]
    fn responses_decode_and_skip_fields_we_leave_out() {
        // A RangeResponse with a header (1), one kv with create_revision (2), mod_revision
        // (3), version (4) and value (5), and count (4).
        let bytes = [
            0x0a, 2, 0x08, 1, // header { cluster_id: 1 }
            0x12, 12, 0x0a, 1, b'k', 0x10, 3, 0x18, 9, 0x20, 2, 0x2a, 1, b'7', // kvs[0]
            0x20, 1, // count
        ];
        let response = RangeResponse::decode(&bytes[..]).unwrap();
        assert_eq!(response.kvs.len(), 1);
        assert_eq!(response.kvs[0].key, b"k");
        assert_eq!(response.kvs[0].mod_revision, 9);
        assert_eq!(response.kvs[0].value, b"7");
    }
}
