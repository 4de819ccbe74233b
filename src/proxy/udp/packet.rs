//! Datagrams on a wildcard-bound frontend (a NodePort on `0.0.0.0`) with
//! the address each was sent to (`IP_PKTINFO`), and replies sent from that
//! address: a resolver drops an answer from any other source (dig does).
//! nix wraps `recvmsg`/`sendmsg` and their control messages safely.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd};

use nix::libc;
use nix::sys::socket::{
    self, ControlMessage, ControlMessageOwned, MsgFlags, SockaddrIn, SockaddrIn6, SockaddrStorage,
    sockopt,
};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// One datagram read from a frontend.
#[derive(Clone, Copy, Debug)]
pub struct Received {
    pub len: usize,
    pub client: SocketAddr,
    /// The address the client sent to, when the socket is wildcard-bound.
    pub local: Option<IpAddr>,
}

/// Asks the kernel for each datagram's destination address on `socket`.
pub fn enable(socket: &impl AsFd, ipv6: bool) -> io::Result<()> {
    let set = if ipv6 {
        socket::setsockopt(socket, sockopt::Ipv6RecvPacketInfo, &true)
    } else {
        socket::setsockopt(socket, sockopt::Ipv4PacketInfo, &true)
    };
    set.map_err(io::Error::from)
}

/// Room for one packet-info control message of either family; allocated
/// once per frontend (the allocator aligns it for `cmsghdr`).
pub fn control_buffer() -> Vec<u8> {
    nix::cmsg_space!(libc::in6_pktinfo)
}

/// The next datagram waiting into `buf`, with the address it was sent
/// to; `WouldBlock` when none is.
pub fn try_recv(socket: &UdpSocket, buf: &mut [u8], control: &mut [u8]) -> io::Result<Received> {
    let fd = socket.as_raw_fd();
    socket.try_io(Interest::READABLE, || recv_now(fd, buf, control))
}

fn recv_now(fd: i32, buf: &mut [u8], control: &mut [u8]) -> io::Result<Received> {
    let mut iov = [IoSliceMut::new(buf)];
    let msg = socket::recvmsg::<SockaddrStorage>(fd, &mut iov, Some(control), MsgFlags::empty())?;
    let client = msg.address.as_ref().and_then(to_std);
    let client = client.ok_or_else(|| io::Error::from(io::ErrorKind::InvalidData))?;
    let mut local = None;
    for cmsg in msg.cmsgs().into_iter().flatten() {
        match cmsg {
            ControlMessageOwned::Ipv4PacketInfo(info) => {
                local = Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(info.ipi_addr.s_addr))));
            }
            ControlMessageOwned::Ipv6PacketInfo(info) => {
                local = Some(IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr)));
            }
            _ => {}
        }
    }
    Ok(Received { len: msg.bytes, client, local })
}

fn to_std(addr: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    addr.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into()))
}

/// Sends `data` to `client` from `local` (the address it sent to) when
/// known, without waiting: a full socket buffer is an error. A UDP socket
/// is nearly always writable: the send is tried at once, not after
/// tokio's readiness, which a socket that never waited has not seen yet.
pub fn try_send(
    socket: &UdpSocket,
    data: &[u8],
    client: SocketAddr,
    local: Option<IpAddr>,
) -> io::Result<usize> {
    match local {
        Some(local) => send_now(socket.as_raw_fd(), data, client, local),
        None => socket2::SockRef::from(socket).send_to(data, &client.into()),
    }
}

fn send_now(fd: i32, data: &[u8], client: SocketAddr, local: IpAddr) -> io::Result<usize> {
    let iov = [IoSlice::new(data)];
    let none = MsgFlags::empty();
    let sent = match (client, local) {
        (SocketAddr::V4(to), IpAddr::V4(from)) => {
            let info = libc::in_pktinfo {
                ipi_ifindex: 0,
                ipi_spec_dst: libc::in_addr { s_addr: u32::from(from).to_be() },
                ipi_addr: libc::in_addr { s_addr: 0 },
            };
            let cmsg = [ControlMessage::Ipv4PacketInfo(&info)];
            socket::sendmsg(fd, &iov, &cmsg, none, Some(&SockaddrIn::from(to)))
        }
        (SocketAddr::V6(to), IpAddr::V6(from)) => {
            let info = libc::in6_pktinfo {
                ipi6_addr: libc::in6_addr { s6_addr: from.octets() },
                ipi6_ifindex: 0,
            };
            let cmsg = [ControlMessage::Ipv6PacketInfo(&info)];
            socket::sendmsg(fd, &iov, &cmsg, none, Some(&SockaddrIn6::from(to)))
        }
        (SocketAddr::V4(to), _) => {
            socket::sendmsg(fd, &iov, &[], none, Some(&SockaddrIn::from(to)))
        }
        (SocketAddr::V6(to), _) => {
            socket::sendmsg(fd, &iov, &[], none, Some(&SockaddrIn6::from(to)))
        }
    };
    sent.map_err(io::Error::from)
}
