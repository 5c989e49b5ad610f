// The Boost.Test framework, compiled once from its header-only form (the same on every
// machine, whether or not a prebuilt Boost.Test library is installed), with main().
#include <boost/test/included/unit_test.hpp>
