//! The ImageService. Nothing is implemented yet: every method answers
//! `UNIMPLEMENTED` through the trait's defaults.

use crate::cri::gen::services::ImageService;

/// The image half of the CRI.
#[derive(Debug, Default)]
pub struct Images;

impl ImageService for Images {}
