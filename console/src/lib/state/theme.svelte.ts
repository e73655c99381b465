/** Light or dark, remembered per browser; the first visit follows the system preference. */
export type Theme = "light" | "dark";

const KEY = "metalman.theme";

export class ThemeManager {
  theme = $state<Theme>("light");

  constructor() {
    const saved = localStorage.getItem(KEY);
    this.theme =
      saved === "light" || saved === "dark"
        ? saved
        : window.matchMedia("(prefers-color-scheme: dark)").matches
          ? "dark"
          : "light";
    this.#apply();
  }

  set(theme: Theme): void {
    this.theme = theme;
    localStorage.setItem(KEY, theme);
    this.#apply();
  }

  toggle(): void {
    this.set(this.theme === "dark" ? "light" : "dark");
  }

  #apply(): void {
    document.documentElement.dataset.theme = this.theme;
  }
}
