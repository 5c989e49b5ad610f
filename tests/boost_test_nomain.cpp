// The Boost.Test framework without main(): gpu tests bring their own (gpu/gpu_test_main.cpp).
#define BOOST_TEST_NO_MAIN
#include <boost/test/included/unit_test.hpp>
