// Vite builds the demo client into dist/, which `atelier serve` serves at `/`.
import { defineConfig } from 'vite'

export default defineConfig({
  base: '/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    chunkSizeWarningLimit: 1200
  },
  server: {
    // `npm run dev` next to `atelier serve` on :8000: the API and the sockets go through.
    proxy: {
      '/api': 'http://127.0.0.1:8000',
      '/yjs': { target: 'ws://127.0.0.1:8000', ws: true },
      '/rooms': { target: 'ws://127.0.0.1:8000', ws: true }
    }
  }
})
