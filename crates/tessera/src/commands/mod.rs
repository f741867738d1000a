//! One module per subcommand.

pub mod apikey;
pub mod audit;
pub mod config_check;
pub mod keys;
pub mod migrate;
pub mod serve;
pub mod token_decode;
pub mod user;
