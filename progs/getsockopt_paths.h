/* Shared by progs/getsockopt_paths.bpf.c and guest/getsockopt_paths.c: the options the
 * driver asks for and the program's counter slot for each. */
#ifndef GETSOCKOPT_PATHS_H
#define GETSOCKOPT_PATHS_H

#define PATHS_SOL_SOCKET 1
#define PATHS_SOL_IP 0
#define PATHS_SOL_SCTP 132
#define PATHS_SOL_PACKET 263
#define PATHS_NOBODY_HANDLES 9877          /* a SOL_SOCKET option no handler knows */
#define PATHS_PACKET_UNKNOWN 9999          /* a SOL_PACKET option af_packet does not know */
/* include/uapi/linux/sctp.h */
#define PATHS_SCTP_STATUS 14
#define PATHS_SCTP_SOCKOPT_PEELOFF 102
#define PATHS_SCTP_SOCKOPT_CONNECTX3 111
#define PATHS_SCTP_SOCKOPT_PEELOFF_FLAGS 122

enum paths_slot {
	SLOT_SOCKET_UNKNOWN,
	SLOT_SCTP_STATUS,
	SLOT_SCTP_PEELOFF,
	SLOT_SCTP_PEELOFF_FLAGS,
	SLOT_SCTP_CONNECTX3,
	SLOT_PACKET,
	SLOT_IP,
	PATHS_SLOTS,
};

static inline unsigned int slot_of(int level, int optname)
{
	if (level == PATHS_SOL_SOCKET && optname == PATHS_NOBODY_HANDLES)
		return SLOT_SOCKET_UNKNOWN;
	if (level == PATHS_SOL_SCTP && optname == PATHS_SCTP_STATUS)
		return SLOT_SCTP_STATUS;
	if (level == PATHS_SOL_SCTP && optname == PATHS_SCTP_SOCKOPT_PEELOFF)
		return SLOT_SCTP_PEELOFF;
	if (level == PATHS_SOL_SCTP && optname == PATHS_SCTP_SOCKOPT_PEELOFF_FLAGS)
		return SLOT_SCTP_PEELOFF_FLAGS;
	if (level == PATHS_SOL_SCTP && optname == PATHS_SCTP_SOCKOPT_CONNECTX3)
		return SLOT_SCTP_CONNECTX3;
	if (level == PATHS_SOL_PACKET)
		return SLOT_PACKET;
	if (level == PATHS_SOL_IP)
		return SLOT_IP;
	return PATHS_SLOTS;
}

#endif
