//! Why an inventory was refused: the rule it breaks, in words to act on.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use ipnet::Ipv4Net;

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("cannot read the inventory {path}: {detail}")]
    Unreadable { path: PathBuf, detail: String },
    #[error("the inventory {path} is not valid: {detail}")]
    Malformed { path: PathBuf, detail: String },
    #[error("Pi name {0:?} is not a host name: use 1 to 63 letters, digits and '-'")]
    BadName(String),
    #[error(
        "Pi serial {0:?} is not 8 hex digits: use the last 8 digits of `Serial` in the Pi's /proc/cpuinfo (for example 1a2b3c4d)"
    )]
    BadSerial(String),
    #[error(
        "MAC address {0:?} is not six two-digit hex octets separated by ':' (b8:27:eb:12:34:56)"
    )]
    BadMac(String),
    #[error("{what} {value} is used by both {first} and {second}: each Pi needs its own")]
    Duplicate {
        what: &'static str,
        value: String,
        first: String,
        second: String,
    },
    #[error("{pi}: IP {ip} is outside the site's subnet {subnet}")]
    OutsideSubnet {
        pi: String,
        ip: Ipv4Addr,
        subnet: Ipv4Net,
    },
    #[error(
        "{pi}: IP {ip} is inside the DHCP range {first}-{last}, where DHCP could hand it to another machine: pick one outside"
    )]
    InsideDhcpRange {
        pi: String,
        ip: Ipv4Addr,
        first: Ipv4Addr,
        last: Ipv4Addr,
    },
    #[error("{pi}: IP {ip} is the {role}'s address")]
    ReservedAddress {
        pi: String,
        ip: Ipv4Addr,
        role: &'static str,
    },
    #[error("{pi}: muxer ID 0 is not valid: use 1 to 65535")]
    BadMuxerId { pi: String },
    #[error("{pi}: gpu_mem {value} MB is outside 16-944")]
    BadGpuMem { pi: String, value: u32 },
    #[error("the site's {what} is not valid: {detail}")]
    BadSite { what: &'static str, detail: String },
    #[error("no Pi named {0} in the inventory")]
    UnknownPi(String),
    #[error("cannot write the inventory {path}: {detail}")]
    Unwritable { path: PathBuf, detail: String },
}
