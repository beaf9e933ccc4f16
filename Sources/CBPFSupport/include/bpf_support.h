#pragma once
/* The two things Swift cannot do directly with libbpf and Linux: implement a
 * variadic (va_list) print callback, and call setns(2). */

/* Installs a libbpf print callback that collects INFO and WARN messages. */
void petrel_log_install(void);
/* Clears the collected messages. */
void petrel_log_reset(void);
/* Copies the collected messages into buffer (NUL-terminated); returns their length. */
unsigned long petrel_log_copy(char *buffer, unsigned long size);

/* Moves the calling thread into the network namespace open at fd. */
int petrel_enter_network_namespace(int fd);
