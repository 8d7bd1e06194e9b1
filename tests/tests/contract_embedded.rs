//! The store contract on the embedded (redb) store.
butterfly_tests::store_contract!(butterfly_tests::aws::embedded_fixture);
