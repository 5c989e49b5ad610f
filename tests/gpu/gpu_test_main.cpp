// main() of every gpu test: exits 77 (CTest reports "skipped") when no usable GPU is
// present, otherwise runs the Boost.Test cases of the executable.
#include <boost/test/unit_test.hpp>
#include <cuda_runtime.h>

#include <cstdio>

bool init_unit_test();  // defined by BOOST_TEST_MODULE in the test file

int main(int argc, char** argv) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    std::printf("no usable GPU (%s): skipped\n", e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
    return 77;
  }
  return boost::unit_test::unit_test_main(&init_unit_test, argc, argv);
}
