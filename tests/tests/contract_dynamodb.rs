//! The store contract on DynamoDB Local (AWS's own implementation), one table per check.
butterfly_tests::store_contract!(butterfly_tests::aws::dynamo_fixture);
