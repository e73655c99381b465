/**
 * Hash routes (`#/machines/node-01`): the console works from any path the listener serves it
 * at, and a reload or a bookmark opens the same view.
 */
export type Route =
  | { view: "machines" }
  | { view: "machine"; name: string; tab: "timeline" | "details" | "yaml" }
  | { view: "discovered" }
  | { view: "images" }
  | { view: "operations" }
  | { view: "appliance" }
  | { view: "audit" };

export function parseRoute(hash: string): Route {
  const parts = hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  switch (parts[0]) {
    case "machines":
      if (parts[1]) {
        const tab = parts[2] === "details" || parts[2] === "yaml" ? parts[2] : "timeline";
        return { view: "machine", name: parts[1], tab };
      }
      return { view: "machines" };
    case "discovered":
    case "images":
    case "operations":
    case "appliance":
    case "audit":
      return { view: parts[0] };
    default:
      return { view: "machines" };
  }
}

export function hrefOf(route: Route): string {
  if (route.view === "machine") {
    return `#/machines/${encodeURIComponent(route.name)}${route.tab === "timeline" ? "" : `/${route.tab}`}`;
  }
  return `#/${route.view}`;
}

export class Router {
  route = $state<Route>(parseRoute(location.hash));

  constructor() {
    window.addEventListener("hashchange", () => {
      this.route = parseRoute(location.hash);
    });
  }

  go(route: Route): void {
    location.hash = hrefOf(route);
  }
}
