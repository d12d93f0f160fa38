// The header from C++, with a small RAII wrapper: `counter NAME N` adds 1
// to the decimal counter in region NAME N times, alternating fm_update and
// fm_lock/fm_read/fm_write/fm_unlock, then prints "done".
#include <filemap.h>

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace {

class Map {
  public:
    explicit Map(const std::string &name) {
        check(fm_open(name.c_str(), 64, 0, &map_));
    }
    ~Map() { fm_close(map_); }
    Map(const Map &) = delete;
    Map &operator=(const Map &) = delete;

    std::string read() const {
        std::string buf(64, '\0');
        size_t len = 0;
        check(fm_read(map_, reinterpret_cast<uint8_t *>(&buf[0]), buf.size(), &len, nullptr));
        buf.resize(len);
        return buf;
    }
    void write(const std::string &s) const {
        check(fm_write(map_, reinterpret_cast<const uint8_t *>(s.data()), s.size(), nullptr));
    }
    void lock() const { check(fm_lock(map_, nullptr)); }
    void unlock() const { check(fm_unlock(map_)); }
    fm_map *get() const { return map_; }

    static void check(fm_status s) {
        if (s != FM_OK) throw std::runtime_error(std::string(fm_status_name(s)) + ": " + fm_last_error());
    }

  private:
    fm_map *map_ = nullptr;
};

long parse(const char *p, size_t n) {
    return n == 0 ? 0 : std::stol(std::string(p, n));
}

extern "C" int32_t increment(void *, uint8_t *buf, size_t capacity, size_t *len) {
    std::string next = std::to_string(parse(reinterpret_cast<char *>(buf), *len) + 1);
    if (next.size() > capacity) return 1;
    next.copy(reinterpret_cast<char *>(buf), next.size());
    *len = next.size();
    return 0;
}

}  // namespace

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    try {
        Map map(argv[1]);
        long n = std::atol(argv[2]);
        for (long i = 0; i < n; i++) {
            if (i % 2 == 0) {
                Map::check(fm_update(map.get(), increment, nullptr, nullptr, nullptr));
            } else {
                map.lock();
                std::string now = map.read();
                map.write(std::to_string(parse(now.data(), now.size()) + 1));
                map.unlock();
            }
        }
        std::puts("done");
    } catch (const std::exception &e) {
        std::fprintf(stderr, "counter: %s\n", e.what());
        return 1;
    }
    return 0;
}
