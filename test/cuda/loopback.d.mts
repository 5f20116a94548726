// Types of loopback.mjs for the vitest wrapper.
export declare const loopbackApi: unknown;
