//! The names a Pi is known by on the network: host name, board serial
//! (its TFTP folder) and MAC address, each checked when read.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::error::InventoryError;

/// A Pi's host name: letters, digits and `-`, as DHCP and NFS paths take it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PiName(String);

/// A Pi's serial number as its bootloader asks TFTP for it: 8 hex digits
/// (the last 8 of `/proc/cpuinfo`'s Serial).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PiSerial(String);

/// An Ethernet address, `aa:bb:cc:dd:ee:ff`, kept in lower case.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MacAddress(String);

macro_rules! text_type {
    ($type:ident) => {
        impl TryFrom<String> for $type {
            type Error = InventoryError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                value.parse()
            }
        }
        impl From<$type> for String {
            fn from(value: $type) -> Self {
                value.0
            }
        }
        impl fmt::Display for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl $type {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
    };
}
text_type!(PiName);
text_type!(PiSerial);
text_type!(MacAddress);

impl FromStr for PiName {
    type Err = InventoryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let valid = (1..=63).contains(&s.len())
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !s.starts_with('-')
            && !s.ends_with('-');
        if valid {
            Ok(Self(s.to_owned()))
        } else {
            Err(InventoryError::BadName(s.to_owned()))
        }
    }
}

impl FromStr for PiSerial {
    type Err = InventoryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        if lower.len() == 8 && lower.chars().all(|c| c.is_ascii_hexdigit()) {
            Ok(Self(lower))
        } else {
            Err(InventoryError::BadSerial(s.to_owned()))
        }
    }
}

impl FromStr for MacAddress {
    type Err = InventoryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        let octets: Vec<&str> = lower.split(':').collect();
        let valid = octets.len() == 6
            && octets
                .iter()
                .all(|o| o.len() == 2 && o.chars().all(|c| c.is_ascii_hexdigit()));
        if valid {
            Ok(Self(lower))
        } else {
            Err(InventoryError::BadMac(s.to_owned()))
        }
    }
}
