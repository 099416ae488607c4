//! Network decisions made once for every HTTP client of the helper (GitHub's API, AWS, doctor's
//! ping): which proxy a request goes through.

pub mod proxy;
