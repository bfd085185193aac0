#include <config.h>
#include "cli.h"
