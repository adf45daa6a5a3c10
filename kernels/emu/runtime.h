// Host emulation runtime: launches a kernel over a grid on a persistent pool of one OS
// thread per CUDA thread of a block; blocks run one after another. See prelude.h.
#pragma once
#include "prelude.h"

#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

struct EmuPool {
    u32 block = 0;
    std::vector<std::thread> workers;
    std::unique_ptr<std::barrier<>> start, end, block_bar;
    std::vector<std::unique_ptr<std::barrier<>>> warp_bars;
    std::vector<EmuWarp> warps;
    std::function<void()> job;
    u32 bx = 0, by = 0, gx = 0, gy = 0;
    bool quit = false;

    void spawn(u32 b) {
        stop();
        block = b;
        start = std::make_unique<std::barrier<>>(b + 1);
        end = std::make_unique<std::barrier<>>(b + 1);
        block_bar = std::make_unique<std::barrier<>>(b);
        warps = std::vector<EmuWarp>(b / 32);
        warp_bars.clear();
        for (auto& w : warps) {
            warp_bars.push_back(std::make_unique<std::barrier<>>(32));
            w.bar = warp_bars.back().get();
        }
        quit = false;
        for (u32 t = 0; t < b; t++)
            workers.emplace_back([this, t] {
                for (;;) {
                    start->arrive_and_wait();
                    if (quit) return;
                    emu = EmuThread{t, bx, by, block, gx, gy, block_bar.get(), &warps[t / 32]};
                    job();
                    end->arrive_and_wait();
                }
            });
    }
    void stop() {
        if (workers.empty()) return;
        quit = true;
        start->arrive_and_wait();
        for (auto& w : workers) w.join();
        workers.clear();
    }
    ~EmuPool() { stop(); }

    // Runs f as the body of every thread of every block of a (gx, gy) grid of `b`-thread blocks.
    void launch(u32 grid_x, u32 grid_y, u32 b, std::function<void()> f) {
        if (b != block) spawn(b);
        job = std::move(f);
        gx = grid_x, gy = grid_y;
        for (by = 0; by < gy; by++)
            for (bx = 0; bx < gx; bx++) {
                start->arrive_and_wait();
                end->arrive_and_wait();
            }
    }
};

inline std::mutex emu_mutex;
inline EmuPool& emu_pool() {
    static EmuPool pool;
    return pool;
}
template <class F> void launch(u32 gx, u32 gy, u32 block, F f) {
    std::lock_guard<std::mutex> lock(emu_mutex);
    emu_pool().launch(gx, gy, block, std::function<void()>(f));
}
