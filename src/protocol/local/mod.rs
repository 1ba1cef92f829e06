//! The local machine as a CIM provider.
