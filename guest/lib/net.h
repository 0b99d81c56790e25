/* Sockets for the drivers: a network namespace of their own, loopback TCP, socket()
 * results as errno names, options, supplementary groups for SO_PEERGROUPS. Set-up
 * failures end in fail(); the try_ and _result forms report what the kernel said. */
#ifndef KREGRESS_NET_H
#define KREGRESS_NET_H

#include <stddef.h>

/* A network namespace of the driver's own with lo up: loopback TCP and AF_PACKET
 * sockets stay off the guest's interfaces. Call it before attaching programs, since it
 * makes an AF_INET socket. */
void enter_private_netns(void);

/* socket() that gives -errno instead of -1, for the cases where refusal is the point */
int try_socket(int family, int type, int protocol);
int must_socket(int family, int type, int protocol);
/* "OK" or the errno name for a socket() attempt; closes what it got. */
const char *socket_result(int family, int type, int protocol);

/* A listener on 127.0.0.1: port 0 picks a free one (stored in *bound), any other port
 * is taken with SO_REUSEADDR. */
int tcp_listener(unsigned short port, unsigned short *bound);
int tcp_connect(unsigned short port);
int tcp_accept(int listen_fd);
void tcp_nodelay(int fd);
void send_all(int fd, const void *buf, size_t len);
void recv_all(int fd, void *buf, size_t len);

/* setsockopt of an int: "OK" or the errno name */
const char *set_int_opt(int fd, int level, int name, int value);
/* getsockopt(SO_PRIORITY) */
int prio_of(int fd);

/* Supplementary groups FIRST_PEER_GROUP.. for this process: a unix socket pair made
 * afterwards answers SO_PEERGROUPS with them. */
#define FIRST_PEER_GROUP 10000
void set_peer_groups(int count);

#endif
