/* auth.c: to be written */
#include <config.h>
#include "podio.h"
