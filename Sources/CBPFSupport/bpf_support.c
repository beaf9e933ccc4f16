#define _GNU_SOURCE
#include "bpf_support.h"
#include <bpf/libbpf.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* The verifier log can run to megabytes; its end says what went wrong, so the
 * buffer keeps the most recent bytes. */
#define LOG_CAPACITY (64 * 1024)

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_text[LOG_CAPACITY];
static unsigned long log_length;

static int collect(enum libbpf_print_level level, const char *format, va_list args)
{
	char line[4096];
	int written;
	unsigned long n;

	if (level == LIBBPF_DEBUG)
		return 0;
	written = vsnprintf(line, sizeof(line), format, args);
	if (written <= 0)
		return written;
	n = (unsigned long)written < sizeof(line) ? (unsigned long)written : sizeof(line) - 1;
	pthread_mutex_lock(&log_lock);
	if (log_length + n >= LOG_CAPACITY) {
		unsigned long keep = LOG_CAPACITY / 2;
		if (keep > log_length)
			keep = log_length;
		memmove(log_text, log_text + log_length - keep, keep);
		log_length = keep;
	}
	if (n < LOG_CAPACITY - log_length) {
		memcpy(log_text + log_length, line, n);
		log_length += n;
	}
	pthread_mutex_unlock(&log_lock);
	return written;
}

void petrel_log_install(void)
{
	libbpf_set_print(collect);
}

void petrel_log_reset(void)
{
	pthread_mutex_lock(&log_lock);
	log_length = 0;
	pthread_mutex_unlock(&log_lock);
}

unsigned long petrel_log_copy(char *buffer, unsigned long size)
{
	unsigned long n;

	if (size == 0)
		return 0;
	pthread_mutex_lock(&log_lock);
	n = log_length < size - 1 ? log_length : size - 1;
	memcpy(buffer, log_text + log_length - n, n);
	buffer[n] = 0;
	pthread_mutex_unlock(&log_lock);
	return n;
}

int petrel_enter_network_namespace(int fd)
{
	return setns(fd, CLONE_NEWNET);
}
