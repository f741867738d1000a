//! `MemoryStore`: every contract.

use std::sync::Arc;

use tessera_store::MemoryStore;

use crate::contract::contract_tests;

fn memory() -> (Arc<MemoryStore>, ()) {
    (Arc::new(MemoryStore::new()), ())
}

contract_tests!(sessions, memory());
contract_tests!(tokens, memory());
contract_tests!(users, memory());
contract_tests!(tickets, memory());
contract_tests!(outbox, memory());
contract_tests!(apikeys, memory());
contract_tests!(audit, memory());
