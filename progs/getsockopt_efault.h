/* SPDX-License-Identifier: GPL-2.0 */
/* What getsockopt_efault's programs and driver agree on (tests/test_getsockopt_efault.py reads
 * the values back from the driver's JSON). */
#ifndef GETSOCKOPT_EFAULT_H
#define GETSOCKOPT_EFAULT_H

#define SO_PRIVATE_OPT 9876       /* SOL_SOCKET: the one option the programs own */
#define SO_NOBODY_HANDLES 9877    /* SOL_SOCKET: no handler anywhere, kernel or program */
#define PRIVATE_VALUE 0x5a        /* what the driver stores in the private option */
#define TOS_VALUE 0x10            /* what the tos case sets and reads back */

#endif
