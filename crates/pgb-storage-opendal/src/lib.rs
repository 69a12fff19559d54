//! # pgb-storage-opendal
//!
//! The object-store adapter shared by pgb's S3, GCS and Azure crates, written once:
//!
//! - [`OpendalStorage`] puts an [OpenDAL](https://opendal.apache.org) operator behind
//!   [`pgb_core::Storage`]: streaming writes with bounded memory, create-only writes as
//!   server-checked conditional requests, segment-scoped recursive listing, idempotent deletes.
//! - It adds the production layers itself: a per-attempt timeout under a retry layer that
//!   retries only temporary failures (5xx, 429, timeouts, refused connections), request by
//!   request and part by part; an input stream is never replayed.
//! - One function maps OpenDAL errors onto [`pgb_core::StorageErrorKind`] and scrubs
//!   credentials from every message ([`AdapterOptions::with_secret`]).
//! - [`PartSizing`] chooses part sizes from the expected object size, so that S3's 10,000-part
//!   limit is never hit by an announced size.
//!
//! No OpenDAL type appears in the documented API: backend crates (`pgb-storage-s3`,
//! `pgb-storage-gcs`, `pgb-storage-azure`) build the operator from their typed config and hand
//! it over through a hidden constructor. Applications use those crates, not this one.

mod adapter;
mod error;
mod options;
mod sizing;
mod util;

pub use adapter::{OpendalStorage, StorageStats};
pub use options::{AdapterOptions, RetryOptions, Timeouts, WriteStrategy};
pub use sizing::{PartSizing, UploadPlan};
pub use util::{config_error, location, normalize_prefix, root_for};

#[doc(hidden)]
pub mod __private {
    //! Support for the backend crates' forwarding impls; not a public API.
    pub use async_trait::async_trait;
}

/// Implements [`pgb_core::Storage`] for a newtype around [`OpendalStorage`] by forwarding every
/// method to its field `.0`. For pgb's backend crates.
#[doc(hidden)]
#[macro_export]
macro_rules! forward_storage_to_inner {
    ($ty:ty) => {
        #[$crate::__private::async_trait]
        #[deny(clippy::missing_trait_methods)]
        impl ::pgb_core::Storage for $ty {
            fn info(&self) -> ::pgb_core::StorageInfo {
                ::pgb_core::Storage::info(&self.0)
            }
            fn stats(&self) -> ::pgb_core::StorageStats {
                ::pgb_core::Storage::stats(&self.0)
            }
            async fn writer(
                &self,
                key: &::pgb_core::ObjectKey,
                opts: ::pgb_core::WriteOptions,
            ) -> ::std::result::Result<
                ::std::boxed::Box<dyn ::pgb_core::ObjectWriter>,
                ::pgb_core::StorageError,
            > {
                ::pgb_core::Storage::writer(&self.0, key, opts).await
            }
            async fn reader(
                &self,
                key: &::pgb_core::ObjectKey,
                range: ::std::option::Option<::std::ops::Range<u64>>,
            ) -> ::std::result::Result<::pgb_core::ByteStream, ::pgb_core::StorageError> {
                ::pgb_core::Storage::reader(&self.0, key, range).await
            }
            async fn head(
                &self,
                key: &::pgb_core::ObjectKey,
            ) -> ::std::result::Result<::pgb_core::ObjectMeta, ::pgb_core::StorageError> {
                ::pgb_core::Storage::head(&self.0, key).await
            }
            async fn list(
                &self,
                prefix: ::std::option::Option<&::pgb_core::ObjectKey>,
            ) -> ::std::result::Result<
                ::std::vec::Vec<::pgb_core::ObjectMeta>,
                ::pgb_core::StorageError,
            > {
                ::pgb_core::Storage::list(&self.0, prefix).await
            }
            fn list_stream<'a>(
                &'a self,
                prefix: ::std::option::Option<&'a ::pgb_core::ObjectKey>,
            ) -> ::pgb_core::ListStream<'a> {
                ::pgb_core::Storage::list_stream(&self.0, prefix)
            }
            async fn delete(
                &self,
                key: &::pgb_core::ObjectKey,
            ) -> ::std::result::Result<(), ::pgb_core::StorageError> {
                ::pgb_core::Storage::delete(&self.0, key).await
            }
        }
    };
}
