// HDF5 C API wrapper (see h5.hpp). Every call is checked once, here.
#include "traces/h5.hpp"

#include <H5FDcore.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <mutex>

namespace dsv4::trace::h5 {

namespace {

// Largest attribute we read (elements); a larger one is reported as corrupt.
constexpr hssize_t kMaxAttrElements = hssize_t{1} << 24;

struct StackText {
  std::string text;
  int taken = 0;
};

herr_t collect_error(unsigned /*n*/, const H5E_error2_t* err, void* client) {
  auto* st = static_cast<StackText*>(client);
  if (st->taken >= 2 || err == nullptr) return 0;
  try {
    char minor[160] = {0};
    H5Eget_msg(err->min_num, nullptr, minor, sizeof minor);
    std::string part = err->desc != nullptr ? err->desc : "";
    if (minor[0] != 0) part += part.empty() ? std::string(minor) : " (" + std::string(minor) + ")";
    std::replace(part.begin(), part.end(), '\n', ' ');
    if (part.empty()) return 0;
    if (!st->text.empty()) st->text += "; ";
    st->text += part;
    ++st->taken;
  } catch (...) {
    return -1;
  }
  return 0;
}

std::string stack_text() {
  StackText st;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, collect_error, &st);
  H5Eclear2(H5E_DEFAULT);
  return st.text;
}

hid_t chk(hid_t id, const Where& w, const std::string& what, Errc code = Errc::bad_input) {
  if (id < 0) fail(code, w, what);
  return id;
}

void chk_status(herr_t rc, const Where& w, const std::string& what, Errc code = Errc::bad_input) {
  if (rc < 0) fail(code, w, what);
}

hid_t file_type(DType t) {
  switch (t) {
    case DType::f32: return H5T_IEEE_F32LE;
    case DType::bf16:
    case DType::f16: return H5T_STD_U16LE;
    case DType::i32: return H5T_STD_I32LE;
    case DType::i64: return H5T_STD_I64LE;
  }
  return H5T_IEEE_F32LE;
}

hid_t mem_type(DType t) {
  switch (t) {
    case DType::f32: return H5T_NATIVE_FLOAT;
    case DType::bf16:
    case DType::f16: return H5T_NATIVE_UINT16;
    case DType::i32: return H5T_NATIVE_INT32;
    case DType::i64: return H5T_NATIVE_INT64;
  }
  return H5T_NATIVE_FLOAT;
}

std::vector<hsize_t> to_hsize(const std::vector<std::uint64_t>& v) { return {v.begin(), v.end()}; }

std::string join_dims(const std::vector<std::uint64_t>& d) {
  std::string s = "[";
  for (std::size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
  return s + "]";
}

Handle plist(hid_t cls, const Where& w) { return Handle(chk(H5Pcreate(cls), w, "H5Pcreate failed", Errc::internal)); }

std::string trim_fixed(const char* p, std::size_t n) {
  std::size_t len = 0;
  while (len < n && p[len] != '\0') ++len;
  std::string s(p, len);
  while (!s.empty() && s.back() == ' ') s.pop_back();  // space-padded strings
  return s;
}

}  // namespace

void silence_errors() {
  static std::once_flag once;
  std::call_once(once, [] { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); });
}

void Handle::reset() {
  if (id_ < 0) return;
  switch (H5Iget_type(id_)) {
    case H5I_FILE: H5Fclose(id_); break;
    case H5I_GROUP: H5Gclose(id_); break;
    case H5I_DATASET: H5Dclose(id_); break;
    case H5I_DATASPACE: H5Sclose(id_); break;
    case H5I_DATATYPE: H5Tclose(id_); break;
    case H5I_ATTR: H5Aclose(id_); break;
    case H5I_GENPROP_LST: H5Pclose(id_); break;
    default: break;
  }
  id_ = H5I_INVALID_HID;
}

void fail(Errc code, const Where& w, const std::string& what) {
  std::string msg = w.str() + ": " + what;
  const std::string st = stack_text();
  if (!st.empty()) msg += " (HDF5: " + st + ")";
  throw Error(code, msg);
}

// ---- files -----------------------------------------------------------------------------

Handle create_file(const std::string& path) {
  silence_errors();
  const Where w{path, "/"};
  Handle fcpl = plist(H5P_FILE_CREATE, w);
  chk_status(H5Pset_obj_track_times(fcpl.get(), 0), w, "cannot disable timestamps", Errc::internal);
  Handle fapl = plist(H5P_FILE_ACCESS, w);
  chk_status(H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V110, H5F_LIBVER_V110), w, "cannot set library version bounds",
             Errc::internal);
  // Strong close: closing the file closes every object still open, so a closed writer has
  // finished the file even if a StepDataset outlives it.
  chk_status(H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG), w, "cannot set close degree", Errc::internal);
  return Handle(chk(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, fcpl.get(), fapl.get()), w, "cannot create file", Errc::io));
}

Handle open_file(const std::string& path) {
  silence_errors();
  const Where w{path, ""};
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw Error(Errc::io, path + ": no such file");
  if (std::filesystem::is_directory(path, ec)) throw Error(Errc::io, path + ": is a directory");
  const htri_t is = H5Fis_hdf5(path.c_str());
  if (is == 0) {
    H5Eclear2(H5E_DEFAULT);
    throw Error(Errc::bad_input, path + ": not an HDF5 file");
  }
  if (is < 0) fail(Errc::io, w, "cannot read file");
  return Handle(chk(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), w, "cannot open HDF5 file (corrupt or truncated?)"));
}

Handle open_image(std::span<const std::byte> image, const std::string& name) {
  silence_errors();
  const Where w{name, ""};
  if (image.size() < 8) throw Error(Errc::bad_input, name + ": not an HDF5 file (" + std::to_string(image.size()) + " bytes)");
  Handle fapl = plist(H5P_FILE_ACCESS, w);
  chk_status(H5Pset_fapl_core(fapl.get(), 1 << 16, 0), w, "cannot set the in-memory driver", Errc::internal);
  chk_status(H5Pset_file_image(fapl.get(), const_cast<std::byte*>(image.data()), image.size()), w,
             "cannot set the file image", Errc::internal);
  return Handle(chk(H5Fopen(name.c_str(), H5F_ACC_RDONLY, fapl.get()), w, "cannot open HDF5 image (corrupt or truncated?)"));
}

void flush(const Handle& file, const Where& w) { chk_status(H5Fflush(file.get(), H5F_SCOPE_GLOBAL), w, "flush failed", Errc::io); }

// ---- groups -----------------------------------------------------------------------------

bool exists(const Handle& loc, const std::string& name, const Where& w) {
  const htri_t r = H5Lexists(loc.get(), name.c_str(), H5P_DEFAULT);
  if (r < 0) fail(Errc::bad_input, Where{w.file, w.object + "/" + name}, "cannot look up link");
  return r > 0;
}

Handle open_group(const Handle& loc, const std::string& name, const Where& w) {
  return Handle(chk(H5Gopen2(loc.get(), name.c_str(), H5P_DEFAULT), w, "cannot open group"));
}

Handle create_group(const Handle& loc, const std::string& name, const Where& w) {
  Handle gcpl = plist(H5P_GROUP_CREATE, w);
  chk_status(H5Pset_obj_track_times(gcpl.get(), 0), w, "cannot disable timestamps", Errc::internal);
  return Handle(chk(H5Gcreate2(loc.get(), name.c_str(), H5P_DEFAULT, gcpl.get(), H5P_DEFAULT), w, "cannot create group",
                    Errc::io));
}

Handle open_or_create_group(const Handle& loc, const std::string& name, const Where& w) {
  return exists(loc, name, w) ? open_group(loc, name, w) : create_group(loc, name, w);
}

namespace {
struct ChildList {
  std::vector<std::string> names;
};
herr_t collect_name(hid_t, const char* name, const H5L_info_t*, void* client) {
  try {
    static_cast<ChildList*>(client)->names.emplace_back(name);
  } catch (...) {
    return -1;
  }
  return 0;
}
}  // namespace

std::vector<std::string> children(const Handle& group, bool groups_only, const Where& w) {
  ChildList all;
  hsize_t idx = 0;
  chk_status(H5Literate(group.get(), H5_INDEX_NAME, H5_ITER_INC, &idx, collect_name, &all), w, "cannot list group");
  std::vector<std::string> out;
  for (const auto& n : all.names) {
    const htri_t ok = H5Oexists_by_name(group.get(), n.c_str(), H5P_DEFAULT);
    if (ok <= 0) {
      H5Eclear2(H5E_DEFAULT);
      continue;  // dangling soft/external link: ignored
    }
    Handle obj(chk(H5Oopen(group.get(), n.c_str(), H5P_DEFAULT), Where{w.file, w.object + "/" + n}, "cannot open object"));
    const H5I_type_t t = H5Iget_type(obj.get());
    if ((groups_only && t == H5I_GROUP) || (!groups_only && t == H5I_DATASET)) out.push_back(n);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// ---- attributes ---------------------------------------------------------------------------

namespace {
herr_t collect_attr(hid_t, const char* name, const H5A_info_t*, void* client) {
  try {
    static_cast<ChildList*>(client)->names.emplace_back(name);
  } catch (...) {
    return -1;
  }
  return 0;
}

AttrValue read_one_attr(const Handle& obj, const std::string& name, const Where& w) {
  const Where aw{w.file, w.object + "@" + name};
  Handle a(chk(H5Aopen(obj.get(), name.c_str(), H5P_DEFAULT), aw, "cannot open attribute"));
  Handle type(chk(H5Aget_type(a.get()), aw, "cannot read attribute type"));
  Handle space(chk(H5Aget_space(a.get()), aw, "cannot read attribute shape"));
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (n < 0 || rank < 0) fail(Errc::bad_input, aw, "cannot read attribute shape");
  if (n > kMaxAttrElements) fail(Errc::bad_input, aw, "attribute too large (" + std::to_string(n) + " elements)");
  const H5T_class_t cls = H5Tget_class(type.get());
  const bool scalar = rank == 0;
  switch (cls) {
    case H5T_INTEGER: {
      std::vector<std::int64_t> v(static_cast<std::size_t>(n));
      if (n > 0) chk_status(H5Aread(a.get(), H5T_NATIVE_INT64, v.data()), aw, "cannot read attribute");
      if (scalar && n == 1) return v[0];
      return v;
    }
    case H5T_FLOAT: {
      std::vector<double> v(static_cast<std::size_t>(n));
      if (n > 0) chk_status(H5Aread(a.get(), H5T_NATIVE_DOUBLE, v.data()), aw, "cannot read attribute");
      if (scalar && n == 1) return v[0];
      return v;
    }
    case H5T_STRING: {
      if (n != 1) fail(Errc::bad_input, aw, "string attribute must hold one string");
      const htri_t vlen = H5Tis_variable_str(type.get());
      if (vlen < 0) fail(Errc::bad_input, aw, "cannot read string type");
      Handle mt(chk(H5Tcopy(H5T_C_S1), aw, "H5Tcopy failed", Errc::internal));
      if (vlen > 0) {
        chk_status(H5Tset_size(mt.get(), H5T_VARIABLE), aw, "H5Tset_size failed", Errc::internal);
        chk_status(H5Tset_cset(mt.get(), H5Tget_cset(type.get())), aw, "cannot read string charset");
        char* p = nullptr;
        chk_status(H5Aread(a.get(), mt.get(), &p), aw, "cannot read attribute");
        std::string s = p != nullptr ? std::string(p) : std::string();
        if (p != nullptr) H5free_memory(p);
        return s;
      }
      const std::size_t size = H5Tget_size(type.get());
      if (size == 0 || size > (1u << 20)) fail(Errc::bad_input, aw, "bad string size");
      chk_status(H5Tset_size(mt.get(), size), aw, "H5Tset_size failed", Errc::internal);
      chk_status(H5Tset_cset(mt.get(), H5Tget_cset(type.get())), aw, "cannot read string charset");
      chk_status(H5Tset_strpad(mt.get(), H5T_STR_NULLPAD), aw, "H5Tset_strpad failed", Errc::internal);
      std::vector<char> buf(size + 1, '\0');
      chk_status(H5Aread(a.get(), mt.get(), buf.data()), aw, "cannot read attribute");
      return trim_fixed(buf.data(), size);
    }
    default: return std::string("<unsupported attribute type>");
  }
}
}  // namespace

Attributes read_attrs(const Handle& obj, const Where& w) {
  ChildList names;
  hsize_t idx = 0;
  chk_status(H5Aiterate2(obj.get(), H5_INDEX_NAME, H5_ITER_INC, &idx, collect_attr, &names), w, "cannot list attributes");
  Attributes out;
  for (const auto& n : names.names) out.emplace(n, read_one_attr(obj, n, w));
  return out;
}

void write_attr(const Handle& obj, const std::string& name, const AttrValue& v, const Where& w, std::size_t cols) {
  const Where aw{w.file, w.object + "@" + name};
  const htri_t ex = H5Aexists(obj.get(), name.c_str());
  if (ex < 0) fail(Errc::io, aw, "cannot look up attribute");
  if (ex > 0) chk_status(H5Adelete(obj.get(), name.c_str()), aw, "cannot replace attribute", Errc::io);
  auto write = [&](hid_t ftype, hid_t mtype, const Handle& space, const void* data) {
    Handle a(chk(H5Acreate2(obj.get(), name.c_str(), ftype, space.get(), H5P_DEFAULT, H5P_DEFAULT), aw,
                 "cannot create attribute", Errc::io));
    chk_status(H5Awrite(a.get(), mtype, data), aw, "cannot write attribute", Errc::io);
  };
  auto vector_space = [&](std::size_t n) {
    if (cols > 0 && n % cols == 0) {
      const hsize_t dims[2] = {static_cast<hsize_t>(n / cols), static_cast<hsize_t>(cols)};
      return Handle(chk(H5Screate_simple(2, dims, nullptr), aw, "H5Screate_simple failed", Errc::internal));
    }
    const hsize_t dims[1] = {static_cast<hsize_t>(n)};
    return Handle(chk(H5Screate_simple(1, dims, nullptr), aw, "H5Screate_simple failed", Errc::internal));
  };
  if (const auto* i = std::get_if<std::int64_t>(&v)) {
    Handle sp(chk(H5Screate(H5S_SCALAR), aw, "H5Screate failed", Errc::internal));
    write(H5T_STD_I64LE, H5T_NATIVE_INT64, sp, i);
  } else if (const auto* d = std::get_if<double>(&v)) {
    Handle sp(chk(H5Screate(H5S_SCALAR), aw, "H5Screate failed", Errc::internal));
    write(H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, sp, d);
  } else if (const auto* s = std::get_if<std::string>(&v)) {
    Handle sp(chk(H5Screate(H5S_SCALAR), aw, "H5Screate failed", Errc::internal));
    Handle t(chk(H5Tcopy(H5T_C_S1), aw, "H5Tcopy failed", Errc::internal));
    std::string padded = s->empty() ? std::string(1, '\0') : *s;
    chk_status(H5Tset_size(t.get(), padded.size()), aw, "H5Tset_size failed", Errc::internal);
    chk_status(H5Tset_strpad(t.get(), H5T_STR_NULLPAD), aw, "H5Tset_strpad failed", Errc::internal);
    chk_status(H5Tset_cset(t.get(), H5T_CSET_UTF8), aw, "H5Tset_cset failed", Errc::internal);
    write(t.get(), t.get(), sp, padded.data());
  } else if (const auto* vi = std::get_if<std::vector<std::int64_t>>(&v)) {
    if (vi->empty()) {
      Handle sp(chk(H5Screate(H5S_NULL), aw, "H5Screate failed", Errc::internal));
      write(H5T_STD_I64LE, H5T_NATIVE_INT64, sp, nullptr);
    } else {
      write(H5T_STD_I64LE, H5T_NATIVE_INT64, vector_space(vi->size()), vi->data());
    }
  } else if (const auto* vd = std::get_if<std::vector<double>>(&v)) {
    if (vd->empty()) {
      Handle sp(chk(H5Screate(H5S_NULL), aw, "H5Screate failed", Errc::internal));
      write(H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, sp, nullptr);
    } else {
      write(H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, vector_space(vd->size()), vd->data());
    }
  }
}

// ---- datasets -------------------------------------------------------------------------------

Handle open_dataset(const Handle& group, const std::string& name, const Where& w) {
  return Handle(chk(H5Dopen2(group.get(), name.c_str(), H5P_DEFAULT), w, "cannot open dataset"));
}

DatasetShape describe_dataset(const Handle& ds, const Where& w) {
  DatasetShape out;
  Handle type(chk(H5Dget_type(ds.get()), w, "cannot read dataset type"));
  const H5T_class_t cls = H5Tget_class(type.get());
  const std::size_t size = H5Tget_size(type.get());
  if (cls == H5T_FLOAT && size == 4) {
    out.dtype = DType::f32;
  } else if (cls == H5T_INTEGER) {
    const H5T_sign_t sign = H5Tget_sign(type.get());
    if (size == 4 && sign == H5T_SGN_2) {
      out.dtype = DType::i32;
    } else if (size == 8 && sign == H5T_SGN_2) {
      out.dtype = DType::i64;
    } else if (size == 2 && sign == H5T_SGN_NONE) {
      const htri_t has = H5Aexists(ds.get(), "dtype");
      if (has < 0) fail(Errc::bad_input, w, "cannot read the dtype attribute");
      if (has == 0) throw Error(Errc::bad_input, w.str() + ": uint16 dataset without a 'dtype' attribute (bfloat16|float16)");
      const AttrValue v = read_one_attr(ds, "dtype", w);
      const auto* s = std::get_if<std::string>(&v);
      if (s != nullptr && *s == "bfloat16") {
        out.dtype = DType::bf16;
      } else if (s != nullptr && *s == "float16") {
        out.dtype = DType::f16;
      } else {
        throw Error(Errc::bad_input, w.str() + ": dtype attribute must be \"bfloat16\" or \"float16\", found '" +
                                         to_string(v) + "'");
      }
    } else {
      throw Error(Errc::bad_input, w.str() + ": unsupported integer type (" + std::to_string(size * 8) + "-bit " +
                                       (sign == H5T_SGN_NONE ? "unsigned" : "signed") + ")");
    }
  } else {
    const std::string kind = cls == H5T_FLOAT ? "float" + std::to_string(size * 8)
                             : cls == H5T_STRING ? "string"
                             : cls < 0 ? "unreadable" : "class " + std::to_string(static_cast<int>(cls));
    throw Error(Errc::bad_input, w.str() + ": unsupported element type (" + kind + ")");
  }
  Handle space(chk(H5Dget_space(ds.get()), w, "cannot read dataset shape"));
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 0 || rank > 8) fail(Errc::bad_input, w, "bad dataset rank");
  std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
  if (rank > 0) chk_status(H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr), w, "cannot read dataset shape");
  out.dims.assign(dims.begin(), dims.end());
  Handle dcpl(chk(H5Dget_create_plist(ds.get()), w, "cannot read dataset properties"));
  if (H5Pget_layout(dcpl.get()) == H5D_CHUNKED) {
    std::vector<hsize_t> ch(static_cast<std::size_t>(std::max(rank, 1)));
    const int cr = H5Pget_chunk(dcpl.get(), rank, ch.data());
    if (cr < 0) fail(Errc::bad_input, w, "cannot read chunk shape");
    out.chunk.assign(ch.begin(), ch.begin() + std::min(cr, rank));
  }
  const int nf = H5Pget_nfilters(dcpl.get());
  if (nf < 0) fail(Errc::bad_input, w, "cannot read filters");
  for (int i = 0; i < nf; ++i) {
    unsigned flags = 0;
    std::size_t nelem = 4;
    unsigned cd[4] = {0, 0, 0, 0};
    char name[64] = {0};
    const H5Z_filter_t f = H5Pget_filter2(dcpl.get(), static_cast<unsigned>(i), &flags, &nelem, cd, sizeof name, name, nullptr);
    if (f < 0) fail(Errc::bad_input, w, "cannot read filter");
    std::string s = f == H5Z_FILTER_DEFLATE ? "gzip(" + std::to_string(nelem > 0 ? cd[0] : 0) + ")"
                    : f == H5Z_FILTER_SHUFFLE ? "shuffle"
                    : f == H5Z_FILTER_FLETCHER32 ? "fletcher32"
                                               : (name[0] ? std::string(name) : "filter " + std::to_string(f));
    out.filters += (out.filters.empty() ? "" : "+") + s;
  }
  if (out.filters.empty()) out.filters = "none";
  return out;
}

Handle create_step_dataset(const Handle& group, const std::string& name, DType t,
                           const std::vector<std::uint64_t>& step_shape, bool compress, int gzip_level, const Where& w) {
  std::vector<hsize_t> dims{0}, maxdims{H5S_UNLIMITED}, chunk{1};
  std::uint64_t chunk_elems = 1;
  for (auto d : step_shape) {
    if (d == 0) throw Error(Errc::bad_input, w.str() + ": empty dimension in per-step shape " + join_dims(step_shape));
    dims.push_back(d);
    maxdims.push_back(d);
    chunk.push_back(d);
    chunk_elems *= d;
  }
  if (chunk_elems * dtype_size(t) >= (std::uint64_t{1} << 32))
    throw Error(Errc::unsupported, w.str() + ": one step is " + std::to_string(chunk_elems * dtype_size(t)) +
                                       " bytes; HDF5 chunks (one per step) must stay below 4 GiB");
  Handle space(chk(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), maxdims.data()), w,
                   "H5Screate_simple failed", Errc::internal));
  Handle dcpl = plist(H5P_DATASET_CREATE, w);
  chk_status(H5Pset_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data()), w, "cannot set chunking", Errc::internal);
  if (compress) {
    chk_status(H5Pset_shuffle(dcpl.get()), w, "cannot set shuffle", Errc::internal);
    chk_status(H5Pset_deflate(dcpl.get(), static_cast<unsigned>(std::clamp(gzip_level, 0, 9))), w, "cannot set gzip",
               Errc::internal);
  }
  chk_status(H5Pset_obj_track_times(dcpl.get(), 0), w, "cannot disable timestamps", Errc::internal);
  Handle ds(chk(H5Dcreate2(group.get(), name.c_str(), file_type(t), space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT), w,
                "cannot create dataset", Errc::io));
  if (t == DType::bf16 || t == DType::f16) write_attr(ds, "dtype", std::string(to_string(t)), w);
  return ds;
}

void write_dataset(const Handle& group, const std::string& name, DType t, const std::vector<std::uint64_t>& dims,
                   const void* data, const Where& w) {
  const auto hd = to_hsize(dims);
  Handle space(chk(H5Screate_simple(static_cast<int>(hd.size()), hd.data(), nullptr), w, "H5Screate_simple failed",
                   Errc::internal));
  Handle dcpl = plist(H5P_DATASET_CREATE, w);
  chk_status(H5Pset_obj_track_times(dcpl.get(), 0), w, "cannot disable timestamps", Errc::internal);
  Handle ds(chk(H5Dcreate2(group.get(), name.c_str(), file_type(t), space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT), w,
                "cannot create dataset", Errc::io));
  chk_status(H5Dwrite(ds.get(), mem_type(t), H5S_ALL, H5S_ALL, H5P_DEFAULT, data), w, "cannot write dataset", Errc::io);
  if (t == DType::bf16 || t == DType::f16) write_attr(ds, "dtype", std::string(to_string(t)), w);
}

namespace {
void select_step(const Handle& filespace, const std::vector<std::uint64_t>& step_shape, std::uint64_t step, const Where& w) {
  std::vector<hsize_t> start(step_shape.size() + 1, 0), count{1};
  start[0] = step;
  for (auto d : step_shape) count.push_back(d);
  chk_status(H5Sselect_hyperslab(filespace.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr), w,
             "cannot select step " + std::to_string(step));
}
Handle step_memspace(const std::vector<std::uint64_t>& step_shape, const Where& w) {
  std::vector<hsize_t> count{1};
  for (auto d : step_shape) count.push_back(d);
  return Handle(chk(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr), w, "H5Screate_simple failed",
                    Errc::internal));
}
}  // namespace

void append_step(const Handle& ds, DType t, const std::vector<std::uint64_t>& step_shape, std::uint64_t step,
                 const void* data, const Where& w) {
  std::vector<hsize_t> ext{step + 1};
  for (auto d : step_shape) ext.push_back(d);
  chk_status(H5Dset_extent(ds.get(), ext.data()), w, "cannot extend dataset", Errc::io);
  Handle fs(chk(H5Dget_space(ds.get()), w, "cannot read dataset shape", Errc::io));
  select_step(fs, step_shape, step, w);
  Handle ms = step_memspace(step_shape, w);
  chk_status(H5Dwrite(ds.get(), mem_type(t), ms.get(), fs.get(), H5P_DEFAULT, data), w,
             "cannot write step " + std::to_string(step), Errc::io);
}

void read_step(const Handle& ds, DType t, const std::vector<std::uint64_t>& dims, std::uint64_t step, void* out,
               const Where& w) {
  if (dims.empty() || step >= dims[0]) throw Error(Errc::bad_input, w.str() + ": step " + std::to_string(step) + " out of range");
  const std::vector<std::uint64_t> step_shape(dims.begin() + 1, dims.end());
  Handle fs(chk(H5Dget_space(ds.get()), w, "cannot read dataset shape"));
  select_step(fs, step_shape, step, w);
  Handle ms = step_memspace(step_shape, w);
  chk_status(H5Dread(ds.get(), mem_type(t), ms.get(), fs.get(), H5P_DEFAULT, out), w,
             "cannot read step " + std::to_string(step) + " (corrupt or truncated data?)");
}

void read_all(const Handle& ds, DType t, void* out, const Where& w) {
  chk_status(H5Dread(ds.get(), mem_type(t), H5S_ALL, H5S_ALL, H5P_DEFAULT, out), w,
             "cannot read dataset (corrupt or truncated data?)");
}

}  // namespace dsv4::trace::h5
