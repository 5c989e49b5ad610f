// Umbrella header of the numerics core (header-only, host + device).
#pragma once
#include "core.hpp"
#include "convert.hpp"
#include "math.hpp"
#include "warp.hpp"
