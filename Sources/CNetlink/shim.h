// The kernel's rtnetlink UAPI (message layouts and constants), imported as is so
// Swift never restates them.
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/neighbour.h>
