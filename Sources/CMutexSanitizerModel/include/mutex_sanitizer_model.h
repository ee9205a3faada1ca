/* Nothing to call: this target only interposes Synchronization.Mutex's slow paths in
 * ThreadSanitizer builds (see tsan_mutex.c). Every executable that uses Mutex depends on it. */
#ifndef SKIFF_MUTEX_SANITIZER_MODEL_H
#define SKIFF_MUTEX_SANITIZER_MODEL_H
#endif
