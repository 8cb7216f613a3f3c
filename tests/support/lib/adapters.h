/* adapters.h: the built-in adapter types the test suites run, taken from the worker's registry
 * (iw_targets_all, worker/targets/registry.c), so a new built-in adapter is run by every suite
 * that loops over them without an edit there. */
#ifndef IW_ADAPTERS_H
#define IW_ADAPTERS_H

#include <stddef.h>

/* How many built-in adapter types the suites run: every one of iw_targets_all but those whose
 * behaviour a mapping file defines (generic: test_generic_navision.c and test_mapping.c test
 * it, with a mapping). */
size_t iw_t_adapter_count(void);

/* The i-th of them, in the registry's order; NULL when i is iw_t_adapter_count() or more. */
const char *iw_t_adapter(size_t i);

/* Their types joined by commas ("centra_soap,centra_navision,..."), as an event's targets where
 * a config names each instance after its type (the local stack's). A static string. */
const char *iw_t_adapter_list(void);

#endif
